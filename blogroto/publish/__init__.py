"""What comes after a build: the Ruby-free preview server (preview), watch mode and `blogroto serve`
(watch), and the CI verdict on a build (ci). The filter catalog is written by the build itself
(build/catalog.py): its pages are part of the output."""
