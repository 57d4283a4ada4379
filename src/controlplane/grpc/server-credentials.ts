// TLS for the control plane's gRPC port. grpc-js's createSsl either ignores client certificates
// or requires them at the handshake; weft needs both kinds of caller on one port (Join has no
// certificate yet, everything else does), so the server asks for a certificate without
// requiring one (requestCert, rejectUnauthorized: false). grpc-js then reports a peer
// certificate to handlers only when it verified against the CA (getAuthContext() ->
// sslPeerCertificate, set only for authorized sockets); each method checks it (./peer-identity.ts).
import * as grpc from '@grpc/grpc-js';

export interface ServerTlsMaterial {
  keyPem: string;
  /** The server certificate followed by its chain. */
  certificatePem: string;
  /** CAs that client certificates must chain to. */
  caPem: string;
}

export class WeftServerCredentials extends grpc.ServerCredentials {
  constructor(material: ServerTlsMaterial) {
    super(
      // TLS 1.3 is what Node negotiates with weft's own clients; 1.2 stays allowed for others.
      { requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
      WeftServerCredentials.context(material),
    );
  }

  private static context(material: ServerTlsMaterial) {
    return {
      key: Buffer.from(material.keyPem),
      cert: Buffer.from(material.certificatePem),
      ca: Buffer.from(material.caPem),
    };
  }

  /** Swaps the server certificate on the listening server (renewal without a restart). */
  update(material: ServerTlsMaterial): void {
    this.updateSecureContextOptions(WeftServerCredentials.context(material));
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}
