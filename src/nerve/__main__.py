from nerve.cli.main import main

raise SystemExit(main())
