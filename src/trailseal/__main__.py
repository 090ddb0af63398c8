from trailseal.cli import main

main()
