"""Faust table declarations and the codecs of the records they hold."""
