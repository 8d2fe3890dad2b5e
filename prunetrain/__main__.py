"""``python -m prunetrain`` runs the CLI."""

from prunetrain.cli import main

if __name__ == "__main__":
    main()
