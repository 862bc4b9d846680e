from machikit.cli import main

raise SystemExit(main())
