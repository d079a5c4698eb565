from readatl06.cli import main

raise SystemExit(main())
