// Preload (node --require ./bind-localhost.cjs …) that makes every TCP server
// in the process listen on 127.0.0.1 only, whatever host the program asked
// for. Test peers such as @modelcontextprotocol/server-everything bind all
// interfaces; agentgate's tests must not expose anything beyond loopback.
"use strict";
const net = require("node:net");

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function patchedListen(...args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    // listen(options[, callback]); a pipe path or handle is left alone.
    if (first.path === undefined && first.handle === undefined && first._handle === undefined && first.fd === undefined) {
      args[0] = { ...first, host: "127.0.0.1" };
    }
    return listen.apply(this, args);
  }
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] === "string") {
      args[1] = "127.0.0.1";
    } else {
      args.splice(1, 0, "127.0.0.1");
    }
    return listen.apply(this, args);
  }
  if (first === undefined || typeof first === "function") {
    // listen([callback]): an ephemeral port on loopback.
    return listen.call(this, 0, "127.0.0.1", ...args.filter((a) => a !== undefined));
  }
  return listen.apply(this, args); // a pipe path
};
