from codex_broker.http_api.main import main

raise SystemExit(main())
