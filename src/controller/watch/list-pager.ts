/**
 * LIST of one collection, page by page (`limit` + `continue`), over the process's shared
 * connection pool (src/kube-client.ts). A 410 on a continue token means the snapshot behind it
 * was compacted: the list starts over in one unpaginated request, as client-go's pager does, so
 * an expiring token cannot loop. Items get the kind and apiVersion their list omits, so listed
 * objects look like watched ones.
 */
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import { fetch } from "undici";
import { requestAuth } from "../../kube-client.ts";
import type { Logger } from "../../log.ts";
import { statusMessage, WatcherError, WatcherErrorCode } from "./types.ts";

export interface ListPagerOptions {
  kc: KubeConfig;
  /** Collection path, e.g. "/api/v1/namespaces/ai/secrets". */
  path: string;
  labelSelector: string | undefined;
  /** Items per page. */
  pageSize: number;
  /** Each request is aborted after this long. */
  timeoutMs: number;
  logger: Logger;
  /** A continue token expired (410) and the list starts over. */
  onContinueExpired: () => void;
}

interface ListPage {
  kind?: string;
  apiVersion?: string;
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubernetesObject[];
}

export class ListPager<T extends KubernetesObject> {
  readonly #o: ListPagerOptions;
  #abort: AbortController | undefined;

  constructor(options: ListPagerOptions) {
    this.#o = options;
  }

  /** Every item of the collection, and the resourceVersion to watch from. */
  async list(): Promise<{ items: T[]; resourceVersion: string }> {
    let items: T[] = [];
    let continueToken: string | undefined;
    let paginate = true;
    for (;;) {
      const url = this.#url();
      if (paginate) url.searchParams.set("limit", String(this.#o.pageSize));
      if (continueToken) url.searchParams.set("continue", continueToken);
      const { status, body } = await this.#get(url);
      if (status === 410 && continueToken) {
        this.#o.onContinueExpired();
        this.#o.logger.info("list continue token expired (410); listing again without pagination");
        items = [];
        continueToken = undefined;
        paginate = false;
        continue;
      }
      if (status !== 200) {
        const message = statusMessage(body);
        throw new WatcherError(
          WatcherErrorCode.ListFailed,
          `LIST ${this.#o.path} answered ${status}${message ? `: ${message}` : ""}`,
          status,
        );
      }
      const page = JSON.parse(body) as ListPage;
      const kind = page.kind?.replace(/List$/, "");
      for (const item of page.items ?? []) {
        if (kind && !item.kind) item.kind = kind;
        if (page.apiVersion && !item.apiVersion) item.apiVersion = page.apiVersion;
        items.push(item as T);
      }
      continueToken = page.metadata?.continue || undefined;
      if (!continueToken) return { items, resourceVersion: page.metadata?.resourceVersion ?? "" };
    }
  }

  /** Aborts the request in flight, if any, with `reason`. */
  abort(reason: Error): void {
    this.#abort?.abort(reason);
  }

  #url(): URL {
    const cluster = this.#o.kc.getCurrentCluster();
    if (!cluster) throw new Error("the KubeConfig has no current cluster");
    const url = new URL(cluster.server + this.#o.path);
    if (this.#o.labelSelector) url.searchParams.set("labelSelector", this.#o.labelSelector);
    return url;
  }

  async #get(url: URL): Promise<{ status: number; body: string }> {
    const { headers, dispatcher } = await requestAuth(this.#o.kc, url);
    const controller = new AbortController();
    this.#abort = controller;
    const timeoutMs = this.#o.timeoutMs;
    const timer = setTimeout(
      () => controller.abort(new Error(`LIST timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const res = await fetch(url, {
        method: "GET",
        headers: { ...headers, accept: "application/json" },
        dispatcher,
        signal: controller.signal,
      });
      return { status: res.status, body: await res.text() };
    } finally {
      clearTimeout(timer);
      this.#abort = undefined;
    }
  }
}
