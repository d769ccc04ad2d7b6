"""Readers of the real file formats; the only code of the package that opens input files.

One module per format, each returning a canonical dataset (see :mod:`fluxbridge.schema`) with
units converted to the package's and recorded in attributes.
"""
