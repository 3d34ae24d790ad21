from ggufrope.cli.app import main

main()
