"""`python -m bench.pipeline [--quick] [--events N] [--runs N] [--no-profile]`"""

from bench.pipeline.run import main

if __name__ == "__main__":
    main()
