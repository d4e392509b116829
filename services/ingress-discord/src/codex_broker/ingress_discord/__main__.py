from codex_broker.ingress_discord.main import main

raise SystemExit(main())
