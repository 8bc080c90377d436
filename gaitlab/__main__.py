from gaitlab.cli import main

raise SystemExit(main())
