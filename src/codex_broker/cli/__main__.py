from codex_broker.cli.main import main

raise SystemExit(main())
