from docshift.cli import main

main()
