from conda_docker._cli import main

main()
