from codex_broker.ingress_feishu.main import main

raise SystemExit(main())
