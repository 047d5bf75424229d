/**
 * Certificates and keys for a throwaway control plane: a CA, the API server's serving
 * certificate (127.0.0.1/localhost, plus any addresses the caller adds), an admin client
 * certificate (O=system:masters), and the ServiceAccount token signing key pair. ECDSA P-256
 * throughout: generated in milliseconds. The CA also signs certificates for other components
 * (issueClientCert, issueServingCert), e.g. a kubelet's.
 */
import "reflect-metadata";
import { generateKeyPairSync, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;

export interface Pem {
  cert: string;
  key: string;
}

export interface ControlPlaneCerts {
  ca: Pem;
  serving: Pem;
  admin: Pem;
  serviceAccount: { publicKey: string; privateKey: string };
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

let serial = 1;
function validity() {
  const now = Date.now();
  return {
    serialNumber: (serial++).toString(16).padStart(2, "0"),
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 365 * DAY_MS),
  };
}

/** A certificate for `subject` signed by `ca`, with a new key pair. */
async function signCert(
  ca: { cert: x509.X509Certificate; key: webcrypto.CryptoKey },
  subject: string,
  usage: "server" | "client",
  altNames: x509.JsonGeneralName[] = [],
): Promise<Pem> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    ...validity(),
    subject,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        [usage === "server" ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
    ],
  });
  return { cert: cert.toString("pem"), key: await privateKeyPem(keys.privateKey) };
}

/**
 * A client certificate for `subject` (e.g. "CN=jane, O=team") signed by a control plane's CA,
 * which the API server then authenticates as that user and groups.
 */
export async function issueClientCert(ca: Pem, subject: string): Promise<Pem> {
  return signCert(await importCa(ca), subject, "client");
}

/** A serving certificate for `subject`, valid for these IP addresses and DNS names. */
export async function issueServingCert(ca: Pem, subject: string, names: ServingNames): Promise<Pem> {
  return signCert(await importCa(ca), subject, "server", altNames(names));
}

/** The names a serving certificate is valid for. */
export interface ServingNames {
  ips?: readonly string[];
  dns?: readonly string[];
}

function altNames(names: ServingNames): x509.JsonGeneralName[] {
  return [
    ...(names.ips ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(names.dns ?? []).map((value) => ({ type: "dns" as const, value })),
  ];
}

async function importCa(ca: Pem) {
  const key = await webcrypto.subtle.importKey(
    "pkcs8",
    x509.PemConverter.decodeFirst(ca.key),
    ALGORITHM,
    false,
    ["sign"],
  );
  return { cert: new x509.X509Certificate(ca.cert), key };
}

/**
 * `apiServerNames`: more addresses the API server is reached at, besides 127.0.0.1, localhost and
 * kubernetes.default.svc (a bind address other than loopback, the `kubernetes` Service's IP).
 */
export async function generateControlPlaneCerts(
  apiServerNames: ServingNames = {},
): Promise<ControlPlaneCerts> {
  const caKeys = await newKeys();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    ...validity(),
    name: "CN=keypool-test-ca",
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const issue = (subject: string, usage: "server" | "client", altNames: x509.JsonGeneralName[] = []) =>
    signCert({ cert: caCert, key: caKeys.privateKey }, subject, usage, altNames);

  const serving = await issue(
    "CN=kube-apiserver",
    "server",
    altNames({
      ips: ["127.0.0.1", ...(apiServerNames.ips ?? []).filter((ip) => ip !== "127.0.0.1")],
      dns: ["localhost", "kubernetes.default.svc", ...(apiServerNames.dns ?? [])],
    }),
  );
  const admin = await issue("CN=keypool-test-admin, O=system:masters", "client");
  const sa = generateKeyPairSync("ec", {
    namedCurve: "P-256",
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });

  return {
    ca: { cert: caCert.toString("pem"), key: await privateKeyPem(caKeys.privateKey) },
    serving,
    admin,
    serviceAccount: { publicKey: sa.publicKey, privateKey: sa.privateKey },
  };
}
