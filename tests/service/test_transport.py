"""service.api.transport extends uvicorn's HttpToolsProtocol, which is not a public API: the
hooks it overrides must exist in the uvicorn installed, with the arguments it passes. (What the
transport does is tested end to end in tests/service/test_hostile.py.)"""

from __future__ import annotations

import inspect

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.transport import JsonErrorsHttpToolsProtocol


def test_every_hook_the_transport_overrides_exists_with_the_same_arguments():
    overridden = {
        name
        for name, member in vars(JsonErrorsHttpToolsProtocol).items()
        if inspect.isfunction(member) and not name.startswith("_")
    }
    assert overridden == {
        "data_received",
        "on_message_begin",
        "on_headers_complete",
        "send_400_response",
    }
    for name in overridden:
        theirs = getattr(HttpToolsProtocol, name, None)
        assert theirs is not None, f"uvicorn's HttpToolsProtocol has no {name} any more"
        ours = getattr(JsonErrorsHttpToolsProtocol, name)
        assert list(inspect.signature(theirs).parameters) == list(
            inspect.signature(ours).parameters
        ), name


def test_the_state_the_transport_reads_is_set_up_by_uvicorn():
    source = inspect.getsource(HttpToolsProtocol.__init__)
    assert "self.transport" in inspect.getsource(HttpToolsProtocol.connection_made)
    assert "self.server_state" in source  # default_headers are written from it
