from codex_broker.ingress_slack.main import main

raise SystemExit(main())
