#!/bin/sh
# The image's ENTRYPOINT. Lambda starts a container image by running ENTRYPOINT with CMD (the
# handler, "handler.handler") as its arguments, and sets _HANDLER only for .zip functions.
# aws-lambda-ric 4.x takes the handler from _HANDLER alone and never reads its command-line
# arguments: its runtime setup (src/utils/runtime-setup.ts in aws-lambda-nodejs-runtime-interface-
# client, bundled into index.mjs) throws "PlatformError: _HANDLER environment variable is not set"
# when it is empty, and likewise when LAMBDA_TASK_ROOT, the folder it loads the handler module
# from, is unset (the image sets it to /var/task; Lambda sets it too). AWS's own base images
# (aws/aws-lambda-base-images, /lambda-entrypoint.sh) bridge the two: exactly one argument,
# exported as _HANDLER, then exec the runtime. This does the same for our Debian image, with
# Node.js running the client directly: npx would want a writable npm cache and the network, and the
# file system is read-only here.
if [ "$#" -ne 1 ]; then
  echo "lambda-entrypoint.sh: expected exactly one argument, the handler (module.function, e.g. handler.handler); got $#" >&2
  # The status AWS's base images use for the same mistake.
  exit 142
fi
export _HANDLER="$1"

# node from PATH: /usr/local/bin in the Node.js image, and on Lambda's default PATH too.
exec node /opt/ric/node_modules/aws-lambda-ric/index.mjs
