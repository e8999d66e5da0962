from mmfuse_cli.cli import main

main()
