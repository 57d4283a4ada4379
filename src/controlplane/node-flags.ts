// The control plane's V8 flags, where a measurement showed their worth (issue #15 item 6). With
// 1,000 agents joining, registering and opening their streams at once (bench scenario 6) V8
// grows its young generation to the default 16 MiB semi-spaces (48 MiB with the space being
// promoted into) and its whole heap to 139-154 MiB, of which 82-111 MiB is used once connected;
// with 2 MiB semi-spaces the heap held 81 MiB for 72 used, at no measurable cost to the initial
// sync (4.0 s). Flags must be on node's command line (V8 sizes the heap when the process
// starts), so the systemd unit and the lab start the control plane with them.
export const CONTROL_PLANE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
