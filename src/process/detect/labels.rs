//! Class names: the built-in COCO-80 list, or a file with one name a line.

use std::path::Path;

use anyhow::{Context, Result};

/// The 80 COCO classes, in the order detection models number them.
pub const COCO80: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Reads the labels a model config names: `coco80` or a file (blank lines skipped).
pub fn load(spec: &str) -> Result<Vec<String>> {
    if spec == "coco80" {
        return Ok(COCO80.iter().map(|s| s.to_string()).collect());
    }
    let text = std::fs::read_to_string(Path::new(spec))
        .with_context(|| format!("cannot read the labels file `{spec}`"))?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(!labels.is_empty(), "the labels file `{spec}` has no names");
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coco_and_files() {
        let coco = load("coco80").expect("coco");
        assert_eq!(
            (coco.len(), coco[0].as_str(), coco[79].as_str()),
            (80, "person", "toothbrush")
        );
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("labels.txt");
        std::fs::write(&file, "cat\n\n dog \n").expect("write");
        assert_eq!(
            load(file.to_str().expect("utf-8")).expect("file"),
            ["cat", "dog"]
        );
        assert!(load("/nonexistent/labels.txt").is_err());
    }
}
