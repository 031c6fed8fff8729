"""``python -m docshift``: the command line."""

import gc

# Importing creates some hundred thousand objects that live as long as the process: the
# cyclic garbage collector would scan them again and again while they are created, and once
# more at exit. It is paused while the command line loads and then told to leave them alone.
gc.disable()
try:
    from docshift.cli import main
finally:
    gc.enable()
gc.freeze()

main()
