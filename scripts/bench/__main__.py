from scripts.bench.run import main

raise SystemExit(main())
