/**
 * The one error the image scripts throw: a stable `code` to match on and a message that says what
 * to install or do. main.ts prints the message; nothing else catches by message text.
 */

/** Why an image step stopped. */
export type ImageErrorCode =
  /** A tool (podman, buildah, debootstrap, npm, tar) is not on the PATH. */
  | "tool_missing"
  /** A tool ran and exited non-zero. */
  | "command_failed"
  /** Building needs root (debootstrap, buildah mount). */
  | "not_root"
  /** No apt source names a mirror for the Debian suite, and --mirror was not given. */
  | "no_apt_source"
  /** The Node.js distribution could not be fetched or read (version, bundled npm). */
  | "node_dist"
  /** ldd found a library missing from the root filesystem. */
  | "library_missing"
  /** An image the step needs is not in the local store. */
  | "image_missing"
  /** The command line made no sense. */
  | "usage";

export class ImageError extends Error {
  override name = "ImageError";
  readonly code: ImageErrorCode;
  constructor(code: ImageErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
