"""Below h5py, no ATL06: chunk indexes and the chunk decoder, shuffle/deflate codecs, low-level
dataset and attribute creation, netCDF dimension scales, attribute decoding, libhdf5 calls h5py lacks."""
