"""`python -m dealscore`: the same command line as the `dealscore` executable."""

from dealscore.entry import main

if __name__ == "__main__":
    main()
