from codex_broker.orchestrator.main import main

raise SystemExit(main())
