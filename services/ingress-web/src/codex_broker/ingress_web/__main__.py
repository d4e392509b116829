from codex_broker.ingress_web.main import main

raise SystemExit(main())
