from blogroto.cli import main

main()
