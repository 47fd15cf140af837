"""Audio service: ffmpeg transcoding to the gateway's voice MP3 and the ID3 tags written into it."""
