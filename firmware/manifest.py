# The meter firmware as a MicroPython package (for `mpremote mip install` or freezing).
# Board-specific code (hal.py) comes from boards/<board>/manifest.py.
metadata(description="Seamless Grid meter firmware", version="0.1.0")
module("main.py")
package("sgcore", base_path="lib")
freeze("lib")
