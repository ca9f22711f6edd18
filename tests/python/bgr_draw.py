"""Test: OpenCV draws a filled white rectangle on bgr() and writes it back."""

import cv2


def process(frame, meta):
    img = frame.bgr()
    cv2.rectangle(img, (0, 0), (63, 63), (255, 255, 255), thickness=-1)
    frame.set_bgr(img)
