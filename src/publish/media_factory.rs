//! An RTSP media factory whose media is built by a Rust closure (typed element builders, no
//! launch strings). Shared: all clients of a mount share one media.

use std::sync::OnceLock;

use anyhow::Result;
use gst::glib;
use gst_rtsp_server::prelude::*;
use gst_rtsp_server::subclass::prelude::*;

/// Builds the media's element: a bin whose payloader is named `pay0`.
pub type MediaBuilder = Box<dyn Fn() -> Result<gst::Element> + Send + Sync>;

glib::wrapper! {
    /// A shared media factory that builds its media with a closure.
    pub struct MediaFactory(ObjectSubclass<imp::MediaFactory>)
        @extends gst_rtsp_server::RTSPMediaFactory;
}

impl MediaFactory {
    /// A factory named `label` (for error messages) building its media with `build`.
    pub fn new(label: impl Into<String>, build: MediaBuilder) -> Self {
        let factory: Self = glib::Object::new();
        let _ = factory.imp().build.set((label.into(), build));
        // One media (one payloader) for all clients of the mount.
        factory.set_shared(true);
        factory
    }
}

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct MediaFactory {
        pub(super) build: OnceLock<(String, MediaBuilder)>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for MediaFactory {
        const NAME: &'static str = "FramegateMediaFactory";
        type Type = super::MediaFactory;
        type ParentType = gst_rtsp_server::RTSPMediaFactory;
    }

    impl ObjectImpl for MediaFactory {}

    impl RTSPMediaFactoryImpl for MediaFactory {
        fn create_element(&self, _url: &gst_rtsp::RTSPUrl) -> Option<gst::Element> {
            let (label, build) = self.build.get()?;
            build()
                .map_err(|e| tracing::error!("{label}: cannot build the media: {e:#}"))
                .ok()
        }
    }
}
