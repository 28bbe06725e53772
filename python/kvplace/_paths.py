# Where `make install` put the shared library; None in a checkout (the build/ beside it is used).
LIBDIR = None
