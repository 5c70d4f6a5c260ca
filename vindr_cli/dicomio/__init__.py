"""Reading DICOM headers and streaming pixel data without holding whole files in memory."""
