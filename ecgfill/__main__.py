from ecgfill.cli import main

main()
