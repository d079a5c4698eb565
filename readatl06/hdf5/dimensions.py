"""netCDF-4 dimensions as HDF5 dimension scales (the layout netCDF-C and h5netcdf make), so that
xarray opens our files with no arguments."""
import h5py

from readatl06.hdf5.attrs import text
from readatl06.hdf5.datasets import plists

NOT_A_VARIABLE = b"This is a netCDF dimension but not a netCDF variable."   # netCDF-4's NAME of such a scale


def make_dimension(parent, name, n):
    """A netCDF-4 dimension of length ``n`` under the open id ``parent``: a float32 dimension scale
    whose NAME says it is no variable (netCDF-C's and h5netcdf's layout); it is never written, so
    no storage is allocated for it (serial HDF5). Returns its dataset id."""
    dset = h5py.h5d.create(parent, name.encode(), h5py.h5t.IEEE_F32BE, h5py.h5s.create_simple((n,)),
                           dcpl=plists().plain)
    h5py.h5ds.set_scale(dset, NOT_A_VARIABLE + b"%10d" % n)
    return dset


def attach_dimension(dset, scale):
    """Dimension 0 of the dataset id ``dset`` is the dimension ``scale`` (DIMENSION_LIST, REFERENCE_LIST)."""
    h5py.h5ds.attach_scale(dset, scale, 0)


def is_dimension(dset):
    """The h5py Dataset is a dimension scale (its CLASS attribute says DIMENSION_SCALE, as HDF5's
    H5DSis_scale reads it): the netCDF dimension of its group, not a variable."""
    return "CLASS" in dset.attrs and text(dset.attrs["CLASS"]) == "DIMENSION_SCALE"


def attach_all(group, name):
    """The dimension ``name`` in the h5py ``group`` with every dataset of the group attached (all of
    one length: a merged group); for a file written without it."""
    dsets = [group[k].id for k in group if group.get(k, getclass=True) is h5py.Dataset]
    dim = make_dimension(group.id, name, dsets[0].shape[0] if dsets else 0)
    for dset in dsets:
        attach_dimension(dset, dim)


DIMENSION_ATTRS = {"DIMENSION_LIST", "REFERENCE_LIST", "CLASS", "NAME", "_Netcdf4Dimid", "_Netcdf4Coordinates"}
