"""Print what the image installs, one requirement a line: the project's dependencies and the
extras the image carries (`s3`: artifacts and uploads in an object store). Read by
docker/Dockerfile and docker/wheelhouse.sh, so both install the same set.

    python3 docker/requirements.py [pyproject.toml]
"""

import sys
import tomllib

IMAGE_EXTRAS = ("s3",)

path = sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml"
with open(path, "rb") as fh:
    project = tomllib.load(fh)["project"]
lines = list(project["dependencies"])
for extra in IMAGE_EXTRAS:
    lines += project["optional-dependencies"][extra]
print("\n".join(lines))
