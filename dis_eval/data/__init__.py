"""The data object: the rows present, their factors, sampling, and bit-packed images.

```python
from dis_eval.data import GroundTruthData, DataSpec, load_data
data = load_data(DataSpec(source="dsprites", subset=None), device="cpu")
```
Names load on first use (no torch at import: see ``dis_eval._lazy``).
"""

from dis_eval._lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "DataSpec": ".spec", "load_data": ".spec", "default_data_dir": ".spec", "prepared_path": ".spec",
    "PREPARED_NAME": ".spec", "NO_SUBSET": ".dependent",
    "GroundTruthData": ".ground_truth", "NoImagesError": ".ground_truth", "unpack_images": ".ground_truth",
    "FACTOR_NAMES": ".factors", "FACTOR_SIZES": ".factors", "NUM_FACTORS": ".factors", "NUM_IMAGES": ".factors",
    "PRESETS": ".dependent", "load_factors_file": ".factors_file", "RowSampler": ".sampling",
})
