from mediasearch.cli import main

main()
