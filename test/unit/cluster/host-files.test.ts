import { describe, expect, it } from "vitest";
import { shimSocket } from "../../support/cluster/host-files.ts";

describe("containerd shim sockets", () => {
  it("are found where containerd 1.6 puts them: sha256 of <socket>/<namespace>/<id>", () => {
    // Observed on this machine: the shim of sandbox 0147182e… listened on /run/containerd/s/0c0f824d….
    expect(
      shimSocket(
        "/tmp/keypool-cluster/containerd/containerd.sock",
        "k8s.io",
        "0147182e0b7f097df48bf08896c25621537f78aba074683bc6c4e96654d9b41d",
      ),
    ).toBe("/run/containerd/s/0c0f824d4eeeb79978f393ed3b243b97bcc867ff71ac2175a40dbcd257b67ea0");
  });
});
