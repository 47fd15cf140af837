"""Audio service: ffmpeg transcoding to the gateway's voice MP3 and the ID3 tags written into it.

Layer: services. May import: config, errors and the base modules (priority); nothing above.
"""
