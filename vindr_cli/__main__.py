from vindr_cli.cli import main

main()
