from codex_broker.codex_runner.main import main

raise SystemExit(main())
