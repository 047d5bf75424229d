/**
 * The few objects the journey adds to the README's own manifests: pods that call the operator
 * with a projected ServiceAccount token (what examples/client.yaml does, with a script of the
 * journey's), and the Redis that deploy/ha/ needs. Every pod here passes the restricted Pod
 * Security Standard, as keypool-system enforces it.
 */

/** The securityContext pieces the restricted Pod Security Standard asks for. */
const RESTRICTED_POD = {
  runAsNonRoot: true,
  runAsUser: 10001,
  runAsGroup: 10001,
  seccompProfile: { type: "RuntimeDefault" },
};
const RESTRICTED_CONTAINER = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
};

export interface CallerPod {
  name: string;
  namespace: string;
  /** Its ServiceAccount; its projected token (audience keypool) is at /var/run/secrets/keypool/token. */
  serviceAccount: string;
  image: string;
  /** A POSIX shell script; $TOKEN_FILE names the token file. */
  script: string;
}

/** A Pod that runs `script` once with a keypool token, and is not restarted. JSON is YAML. */
export function callerPod(pod: CallerPod): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: pod.name,
      namespace: pod.namespace,
      labels: { "app.kubernetes.io/part-of": "keypool-e2e" },
    },
    spec: {
      serviceAccountName: pod.serviceAccount,
      automountServiceAccountToken: false,
      restartPolicy: "Never",
      terminationGracePeriodSeconds: 1,
      securityContext: RESTRICTED_POD,
      containers: [
        {
          name: "caller",
          image: pod.image,
          imagePullPolicy: "IfNotPresent",
          command: ["/bin/sh", "-c", pod.script],
          env: [{ name: "TOKEN_FILE", value: "/var/run/secrets/keypool/token" }],
          securityContext: RESTRICTED_CONTAINER,
          volumeMounts: [{ name: "keypool-token", mountPath: "/var/run/secrets/keypool", readOnly: true }],
        },
      ],
      volumes: [
        {
          name: "keypool-token",
          projected: {
            sources: [
              { serviceAccountToken: { path: "token", audience: "keypool", expirationSeconds: 3600 } },
            ],
          },
        },
      ],
    },
  });
}

/**
 * One Redis (persistence off) and its Service in `namespace`, for deploy/ha/: redis://redis.<ns>.svc:6379/0.
 * The image's entrypoint is redis-server; the arguments here make it listen beyond loopback.
 */
export function redis(namespace: string, image: string): string {
  const labels = { "app.kubernetes.io/name": "redis", "app.kubernetes.io/part-of": "keypool-e2e" };
  return [
    {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "redis", namespace, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: { "app.kubernetes.io/name": "redis" } },
        template: {
          metadata: { labels },
          spec: {
            automountServiceAccountToken: false,
            securityContext: { ...RESTRICTED_POD, runAsUser: 6379, runAsGroup: 6379 },
            containers: [
              {
                name: "redis",
                image,
                imagePullPolicy: "IfNotPresent",
                args: ["--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"],
                ports: [{ name: "redis", containerPort: 6379 }],
                readinessProbe: { tcpSocket: { port: "redis" }, periodSeconds: 2 },
                securityContext: RESTRICTED_CONTAINER,
                volumeMounts: [{ name: "data", mountPath: "/data" }],
              },
            ],
            volumes: [{ name: "data", emptyDir: {} }],
          },
        },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "redis", namespace, labels },
      spec: { selector: { "app.kubernetes.io/name": "redis" }, ports: [{ name: "redis", port: 6379 }] },
    },
  ]
    .map((o) => JSON.stringify(o))
    .join("\n---\n");
}
