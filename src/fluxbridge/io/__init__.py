"""Readers of the real file formats; the only code of the package that opens input files.

:mod:`fluxbridge.io.inputs` names every input by role, opens it through these readers and
checks it (docs/inputs.md). One module per format (:mod:`~fluxbridge.io.fluxnet` site files,
:mod:`~fluxbridge.io.sitemeta`, :mod:`~fluxbridge.io.era5`, :mod:`~fluxbridge.io.modis`,
:mod:`~fluxbridge.io.land_cover`, :mod:`~fluxbridge.io.inversions`,
:mod:`~fluxbridge.io.region_masks`, :mod:`~fluxbridge.io.region_vectors`,
:mod:`~fluxbridge.io.footprints` STILT footprints, :mod:`~fluxbridge.io.obspack` tower CO2...),
each returning a
canonical dataset (see :mod:`fluxbridge.schema`) with units converted to the package's and
recorded in attributes. :mod:`~fluxbridge.io.inspect` tells what a single file is.
"""
