"""People in ordinary colour video → one silhouette clip per person, in the input contract.

    decode (``source``) → detect people (``detector``) → track them (``tracking``)
    → segment each person (``segmenter``) → normalise (``models.silhouette``) per track
    (``pipeline``); ``tracks_file`` writes the result, ``sandbox`` runs it all in a capped
    child process for the service, ``annotate`` draws it, ``cli`` is ``gaitlab video``.

The detector and the segmenter are MediaPipe's BlazePose models (``pose_detection.tflite``,
``pose_landmark_full.tflite``) as shipped inside the ``mediapipe==0.10.21`` wheel; they are
copied out of that wheel once at install time (``assets``) and run with LiteRT
(``ai-edge-litert``). Nothing here imports torch; nothing is fetched at run time. Needs the
``video`` extra. This ``__init__`` imports nothing.
"""
