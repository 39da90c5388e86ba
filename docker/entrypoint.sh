#!/bin/sh
# Every container: one line and exit 1 when the settings do not load, or the database, the
# broker or the object store cannot be reached (annotator/lib/readiness.py, manage.py
# check_services), instead of a process that starts and fails later, or waits forever; then
# the command. ANNOTATOR_CREATE_BUCKET=1 (compose's init) makes a missing bucket first.
set -e
python -m annotator.lib.readiness ${ANNOTATOR_CREATE_BUCKET:+--create-bucket}
exec "$@"
