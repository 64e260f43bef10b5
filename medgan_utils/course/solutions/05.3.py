empty = torch.zeros(1, 1, 64, 64)
one_pixel = empty.clone()
one_pixel[0, 0, 30, 30] = 1
lesion = empty.clone()
lesion[0, 0, 20:40, 20:40] = 1
conv = {}
for case, name, pred, truth in (("a", "empty truth, empty prediction", empty, empty),
                                ("b", "empty truth, one predicted pixel", one_pixel, empty),
                                ("c", "a lesion, empty prediction", empty, lesion)):
    m = segmentation_metrics(pred, truth)
    conv[case] = (m["dice"][0], m["iou"][0], m["hd95"][0])
    print(f"({case}) {name:<34}: Dice {conv[case][0]:.2f}, IoU {conv[case][1]:.2f}, HD95 {conv[case][2]:.1f} px")
quiz_05_3 = 0.6  # an empty predictor: Dice 1 on the 60 % normal images, 0 on the rest
