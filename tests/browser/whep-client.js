// A WHEP viewer in a test page: window.whepConnect(base, stream, video, ice, audio) offers
// recvonly H.264 video (and audio, when `audio`), posts the offer once ICE gathering is complete (or after 2 s), plays the answer
// in `video` and returns { pc, res, answer, t0 } (t0: performance.now() before the POST).
window.whepConnect = async (base, stream, video, ice = {}, audio = false) => {
  const pc = new RTCPeerConnection(ice);
  pc.addTransceiver("video", { direction: "recvonly" });
  if (audio) pc.addTransceiver("audio", { direction: "recvonly" });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
    setTimeout(done, 2000);
  });
  const t0 = performance.now();
  const res = await fetch(`${base}/streams/${stream}/whep`, {
    method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp,
  });
  const answer = await res.text();
  if (res.status === 201) {
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
    // The tracks the answer sends (an inactive one would hold the video element back).
    const live = pc.getTransceivers().filter((t) => ["recvonly", "sendrecv"].includes(t.currentDirection));
    video.srcObject = new MediaStream(live.map((t) => t.receiver.track));
  }
  return { pc, res, answer, t0 };
};
