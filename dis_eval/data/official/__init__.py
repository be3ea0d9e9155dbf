"""The official dSprites file format: names and checksums (``format``, ``checksum``), reading
(``read``), writing (``write``) and the packed sidecar cache (``cache``)."""

from dis_eval._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "OFFICIAL_NPZ_NAME": ".format", "OFFICIAL_HDF5_NAME": ".format", "OFFICIAL_URL": ".format",
    "OFFICIAL_NPZ_BLOB_ID": ".format", "OFFICIAL_HDF5_BLOB_ID": ".format", "REQUIRED_NPZ_KEYS": ".format",
    "CHUNK_IMAGES": ".format", "LoadedImages": ".format", "official_metadata": ".format",
    "count_on_pixels": ".format", "mean_pixel": ".format",
    "git_blob_id": ".checksum",
    "read_npz": ".read", "read_hdf5": ".read", "read_any": ".read",
    "write_npz": ".write",
    "write_cache": ".cache", "cache_paths": ".cache",
})
