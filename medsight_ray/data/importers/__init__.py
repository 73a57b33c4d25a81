"""Importers that turn real dataset layouts into medsight_ray parquet datasets.

    vindr    VinDr-CXR annotation CSV + PNG/DICOM images  -> task ``concepts``
    folders  one folder per class                          -> task ``grading``
    pairs    images and masks with matching file names     -> task ``segmentation``
"""
