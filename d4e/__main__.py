from d4e.cli import main

main()
